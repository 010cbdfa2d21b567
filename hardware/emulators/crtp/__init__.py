"""Pieces of an emulated Crazyflie firmware speaking CRTP (the Crazy RealTime Protocol).

- :mod:`.packets`: the packet header codec and the port/channel numbers of the firmware;
- :mod:`.tables`: the log and parameter tables of contents (TOC), their element encoding and CRC;
- :mod:`.logblocks`: log blocks (create, append, start, stop, delete) and log data packets;
- :mod:`.params`: parameter storage, reads and writes;
- :mod:`.commander`: setpoint decoding (legacy RPYT, generic commander, high-level commander) and the
  commander watchdog;
- :mod:`.firmware`: the firmware: dispatches packets to the above, the supervisor (arming, emergency stop),
  and the mapping of setpoints to the simulated vehicle's command modes.
"""
