"""The STS3215 control table (memory map), written from Feetech's STS/SMS series manual.

Addresses are byte offsets in the servo's 256-byte register file; multi-byte values are little-endian (protocol
0). EPROM registers (0..39) keep configuration, RAM registers (40..) command and feedback. Some registers hold
sign-magnitude numbers: the bit given as ``sign_bit`` is the sign, the lower bits the magnitude (Homing_Offset
bit 11, Present_Velocity/Goal_Position/Goal_Velocity/Present_Position bit 15, Present_Load bit 10).

Units: positions in encoder ticks (4096 per turn), velocities in ticks/s, acceleration in 100 ticks/s^2,
torque/load in 0.1 % of the stall torque, voltage in 0.1 V, temperature in deg C, current in 6.5 mA, time
registers as named.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

EPROM_END = 40  # first RAM address


@dataclass(frozen=True)
class Register:
    """One entry of the control table.

    Attributes:
        name: register name (lerobot's spelling where it has one).
        address: first byte.
        size: bytes (1 or 2).
        writable: the host may write it (read-only registers ignore writes, as the servo does).
        default: factory value.
        sign_bit: bit of the sign in sign-magnitude encoding, or None for unsigned.
    """

    name: str
    address: int
    size: int
    writable: bool = True
    default: int = 0
    sign_bit: int | None = None


STS3215_MODEL = 777
STS3215_FIRMWARE = (3, 10)

_TABLE = (
    # EPROM
    Register("Firmware_Major_Version", 0, 1, False, STS3215_FIRMWARE[0]),
    Register("Firmware_Minor_Version", 1, 1, False, STS3215_FIRMWARE[1]),
    Register("Model_Number", 3, 2, False, STS3215_MODEL),
    Register("ID", 5, 1, True, 1),
    Register("Baud_Rate", 6, 1, True, 0),  # index into BAUD_RATES
    Register("Return_Delay_Time", 7, 1, True, 250),  # 2 us units
    Register("Response_Status_Level", 8, 1, True, 1),  # 0: reply only to READ/PING
    Register("Min_Position_Limit", 9, 2, True, 0),
    Register("Max_Position_Limit", 11, 2, True, 4095),
    Register("Max_Temperature_Limit", 13, 1, True, 70),
    Register("Max_Voltage_Limit", 14, 1, True, 140),
    Register("Min_Voltage_Limit", 15, 1, True, 40),
    Register("Max_Torque_Limit", 16, 2, True, 1000),
    Register("Phase", 18, 1, True, 0),
    Register("Unloading_Condition", 19, 1, True, 44),  # overheat | overcurrent | overload
    Register("LED_Alarm_Condition", 20, 1, True, 47),
    Register("P_Coefficient", 21, 1, True, 32),
    Register("D_Coefficient", 22, 1, True, 32),
    Register("I_Coefficient", 23, 1, True, 0),
    Register("Minimum_Startup_Force", 24, 2, True, 16),
    Register("CW_Dead_Zone", 26, 1, True, 1),
    Register("CCW_Dead_Zone", 27, 1, True, 1),
    Register("Protection_Current", 28, 2, True, 500),
    Register("Angular_Resolution", 30, 1, True, 1),
    Register("Homing_Offset", 31, 2, True, 0, sign_bit=11),
    Register("Operating_Mode", 33, 1, True, 0),
    Register("Protective_Torque", 34, 1, True, 20),  # % output while overload-protected
    Register("Protection_Time", 35, 1, True, 200),  # 10 ms units
    Register("Overload_Torque", 36, 1, True, 80),  # % load that starts the protection timer
    Register("Velocity_closed_loop_P_proportional_coefficient", 37, 1, True, 10),
    Register("Over_Current_Protection_Time", 38, 1, True, 200),  # 10 ms units
    Register("Velocity_closed_loop_I_integral_coefficient", 39, 1, True, 200),
    # RAM
    Register("Torque_Enable", 40, 1, True, 0),
    Register("Acceleration", 41, 1, True, 0),  # 100 ticks/s^2, 0 = servo maximum
    Register("Goal_Position", 42, 2, True, 0, sign_bit=15),
    Register("Goal_Time", 44, 2, True, 0),  # ms (stored; position mode uses Goal_Velocity)
    Register("Goal_Velocity", 46, 2, True, 0, sign_bit=15),  # ticks/s, 0 = servo maximum
    Register("Torque_Limit", 48, 2, True, 1000),
    Register("Lock", 55, 1, True, 0),
    Register("Present_Position", 56, 2, False, 0, sign_bit=15),
    Register("Present_Velocity", 58, 2, False, 0, sign_bit=15),
    Register("Present_Load", 60, 2, False, 0, sign_bit=10),
    Register("Present_Voltage", 62, 1, False, 120),
    Register("Present_Temperature", 63, 1, False, 25),
    Register("Status", 65, 1, False, 0),
    Register("Moving", 66, 1, False, 0),
    Register("Present_Current", 69, 2, False, 0),
    # factory area
    Register("Maximum_Acceleration", 85, 1, True, 254),
)

REGISTERS: MappingProxyType[str, Register] = MappingProxyType({r.name: r for r in _TABLE})

# Baud_Rate register value -> bits per second (STS/SMS series).
BAUD_RATES: MappingProxyType[int, int] = MappingProxyType(
    {0: 1_000_000, 1: 500_000, 2: 250_000, 3: 128_000, 4: 115_200, 5: 57_600, 6: 38_400, 7: 19_200}
)

# Status register bits (also the error byte of every status packet).
ERR_VOLTAGE, ERR_ANGLE, ERR_OVERHEAT, ERR_OVERELE, ERR_OVERLOAD = 0x01, 0x02, 0x04, 0x08, 0x20
ERR_INSTRUCTION = ERR_OVERELE  # the STS error byte has no instruction bit; the SDK shares 0x08

_READ_ONLY = frozenset(a for r in _TABLE if not r.writable for a in range(r.address, r.address + r.size))


def encode_sign_magnitude(value: int, sign_bit: int) -> int:
    """Signed ``value`` -> register word (sign at ``sign_bit``, magnitude below it, saturated)."""
    limit = (1 << sign_bit) - 1
    magnitude = min(abs(int(value)), limit)
    return magnitude | (1 << sign_bit) if value < 0 else magnitude


def decode_sign_magnitude(word: int, sign_bit: int) -> int:
    """Register word -> signed value."""
    magnitude = word & ((1 << sign_bit) - 1)
    return -magnitude if word & (1 << sign_bit) else magnitude


class ControlTable:
    """A servo's 256-byte register file with the STS3215 factory defaults and named, decoded access."""

    def __init__(self, servo_id: int = 1) -> None:
        self.memory = bytearray(256)
        for reg in _TABLE:
            self.set(reg.name, reg.default)
        self.set("ID", servo_id)

    def get(self, name: str) -> int:
        """Decoded value of register ``name`` (signed where the register is sign-magnitude)."""
        reg = REGISTERS[name]
        word = int.from_bytes(self.memory[reg.address : reg.address + reg.size], "little")
        return decode_sign_magnitude(word, reg.sign_bit) if reg.sign_bit is not None else word

    def set(self, name: str, value: int) -> None:
        """Store ``value`` in register ``name`` (servo side: read-only registers too; encodes the sign)."""
        reg = REGISTERS[name]
        if reg.sign_bit is not None:
            word = encode_sign_magnitude(int(value), reg.sign_bit)
        else:
            word = min(max(int(value), 0), (1 << (8 * reg.size)) - 1)
        self.memory[reg.address : reg.address + reg.size] = word.to_bytes(reg.size, "little")

    def read(self, address: int, length: int) -> bytes:
        """Raw bytes ``address .. address + length - 1`` (beyond the table reads as zeros, as the servo's map)."""
        out = bytes(self.memory[address : address + length])
        return out + bytes(length - len(out))

    def host_write(self, address: int, data: bytes) -> frozenset[str]:
        """A WRITE from the bus: bytes of read-only registers are ignored. Returns the names of registers touched."""
        for k, byte in enumerate(data):
            a = address + k
            if a < 256 and a not in _READ_ONLY:
                self.memory[a] = byte
        end = address + len(data)
        return frozenset(r.name for r in _TABLE if r.writable and r.address < end and address < r.address + r.size)
