"""Offline: rosbag I/O with rosbags, batched replay through the same FrameProcessor, and camera
bags (frames written as a driver would record them) for the demo and the tests.
"""
