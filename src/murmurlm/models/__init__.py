"""murmurlm.models"""
