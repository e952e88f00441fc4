"""podnet.services"""
