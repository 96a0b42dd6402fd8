"""murmurlm.inference"""
