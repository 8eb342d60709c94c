"""The agent's host side: shipped to hosts as source, stdlib only."""
