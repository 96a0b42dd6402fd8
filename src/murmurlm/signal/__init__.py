"""murmurlm.signal"""
