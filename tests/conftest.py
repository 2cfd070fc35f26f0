import sys
from pathlib import Path

# The shared test helpers live in tests/support.
sys.path.insert(0, str(Path(__file__).parent))
