"""Local stand-ins of the systems ml-connector talks to. Each lives in its own sub-package."""
