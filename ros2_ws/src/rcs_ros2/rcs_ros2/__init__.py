"""ROS 2 nodes of the rcs stack: robot_bridge (rcs robot <-> ROS topics/services) and policy_node (rcs serve ->
JointTrajectory). They depend only on rclpy, message packages and the light rcs core."""
