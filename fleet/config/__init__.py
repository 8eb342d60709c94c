"""What the user writes, read and checked with file:line in every error.

``suite`` (suite files), ``sampling`` (the suite's ``sampling`` option and the agent's spec) and
``inventory/`` (Ansible inventories -> Hosts; the only ansible import).
"""
