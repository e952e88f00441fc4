"""podnet.workloads"""
