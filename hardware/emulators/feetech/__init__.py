"""Feetech STS3215 servo bus emulation: control table (:mod:`.registers`), packet codec (:mod:`.protocol`), the
servo model (:mod:`.servo`) and the bus engine on a pseudo-terminal (:mod:`.bus`)."""
