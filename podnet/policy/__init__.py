"""podnet.policy"""
