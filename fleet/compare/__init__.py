"""Compare results: statistics (stats), like-for-like checks (fingerprint), selection of data
from the store (select, load), verdicts (engine, decide), outputs (output). What `fleet
compare` and `fleet gate` call is fleet.api.compare."""
