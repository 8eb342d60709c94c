"""The agent's HOST side: stdlib only, python3 >= 3.8, shipped to each host as source text.

fleet/agent/shipping.py sends every module of this folder (runner.py first, then the others by
name; this file is not shipped) to a constant bootstrap that exec()s them in ONE scope and
calls ``runner.main()``: top-level names must be unique across the files, and an import of a
sibling is written under ``if __name__ != "fleet_agent":`` (it only runs when the files are
imported as a package, by the tests and by the controller for ``version.py``).
"""
