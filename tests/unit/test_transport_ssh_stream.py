"""SshStream.write on a connection that died: one TransportError, whatever paramiko raised."""

from __future__ import annotations

from typing import Any, cast

import paramiko
import pytest

from fleet.errors import TransportError
from fleet.transport.ssh import SshStream


class DeadChannel:
    """What paramiko's Channel.sendall does once the peer is gone (seen in a lab run where
    the host's sshd was killed between two requests: the packetizer raised EOFError)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def sendall(self, data: bytes) -> None:
        raise self.error


@pytest.mark.parametrize("error", [EOFError(), BrokenPipeError(32, "Broken pipe"),
                                   paramiko.SSHException("Socket is closed")])
def test_write_to_a_dead_connection_is_a_transport_error(error: BaseException) -> None:
    stream = SshStream("lab2", ("python3", "-c", "agent"), cast(Any, DeadChannel(error)))
    with pytest.raises(TransportError, match=r"^lab2: cannot write to python3 -c agent: .+ \("
                                             r"the command has ended or the host is gone\)$"):
        stream.write('{"type":"ping","id":1}\n')
