"""podnet.cluster"""
