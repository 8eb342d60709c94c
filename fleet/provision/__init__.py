"""Provisioning: every state change fleet makes on a host, through Ansible roles in playbooks/.

``fleet.provision.ansible`` is the only importer of ansible_runner (imported lazily: it is slow).
"""
