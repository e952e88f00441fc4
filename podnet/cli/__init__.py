"""podnet.cli"""
