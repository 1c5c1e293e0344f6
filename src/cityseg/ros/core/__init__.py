"""The ROS-free per-frame core: the outputs table, image <-> ndarray, CDR bytes, message
factories, and the FrameProcessor both runners (the live node, the bag replay) call.
"""
