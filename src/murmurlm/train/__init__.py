"""murmurlm.train"""
