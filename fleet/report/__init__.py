"""`fleet report`: one run (or two, or two variants of one) as a static HTML page with plots.

``model`` (frozen records) and ``assemble`` (store records -> tables and series) and ``html``
(records -> one page) are pure; ``load`` reads the store, ``plots`` is the only matplotlib
user, ``build`` ties them together and writes the directory atomically.
"""
