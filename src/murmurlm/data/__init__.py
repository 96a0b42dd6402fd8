"""murmurlm.data"""
