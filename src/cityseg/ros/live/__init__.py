"""The live node on rclpy: parameters, one camera's endpoints, the inference threads, diagnostics,
frames lost upstream, warm frame memory, the DDS profile, the launch plan, the lifecycle node and its entry point.
"""
