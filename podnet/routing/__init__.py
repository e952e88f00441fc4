"""podnet.routing"""
