"""forwarders"""
