"""Compare results: statistics (stats), like-for-like checks (fingerprint), selection of data
from the store (select, load), verdicts (engine), outputs (output) and the CI gate (gate)."""
