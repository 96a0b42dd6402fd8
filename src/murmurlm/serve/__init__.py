"""murmurlm.serve"""
