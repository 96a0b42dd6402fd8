"""murmurlm.evaluate"""
