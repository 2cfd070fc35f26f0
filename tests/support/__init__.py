"""Helpers the tests share: running Singer plugins as real processes, and driving the stand-ins' admin interfaces."""
