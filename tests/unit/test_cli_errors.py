"""The `kvmpy` command line: every user error is one line and a non-zero status, never a traceback."""

from __future__ import annotations

import os
import pty
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvmpy.kvm import JitSettings
from kvmpy.vmm import cli
from kvmpy.vmm.errors import VmmError
from kvmpy.vmm.machines.base import MachineConfig, MemoryLimits
from kvmpy.vmm.machines.malta import Malta

REPO = Path(__file__).resolve().parents[2]

# A guest that prints "OK\n" on the console UART (ISA 0x3f8 through kseg1) and resets the board.
GUEST_OK_AND_RESET = [
    0x3C08B800,  # lui   t0, 0xb800
    0x350803F8,  # ori   t0, t0, 0x3f8
    0x2409004F,  # li    t1, 'O'
    0xA1090000,  # sb    t1, 0(t0)
    0x2409004B,  # li    t1, 'K'
    0xA1090000,  # sb    t1, 0(t0)
    0x2409000A,  # li    t1, '\n'
    0xA1090000,  # sb    t1, 0(t0)
    0x3C08BF00,  # lui   t0, 0xbf00
    0x24090042,  # li    t1, 0x42 (GORESET)
    0xAD090500,  # sw    t1, 0x500(t0): FPGA SOFTRES
    0x1000FFFF,  # b     .
    0x00000000,  # nop
]
SPIN = [0x1000FFFF, 0x00000000]


def make_elf(
    words: list[int],
    *,
    vaddr: int = 0x80100000,
    elf_class: int = 1,
    data: int = 1,
    machine: int = 8,
) -> bytes:
    """A minimal ELF executable with one PT_LOAD segment holding `words`."""
    code = b"".join(struct.pack("<I", w) for w in words)
    ident = b"\x7fELF" + bytes([elf_class, data, 1]) + bytes(9)
    header = ident + struct.pack("<HHIIIIIHHHHHH", 2, machine, 1, vaddr, 52, 0, 0, 52, 32, 1, 40, 0, 0)
    phdr = struct.pack("<IIIIIIII", 1, 84, vaddr, vaddr, len(code), len(code), 5, 4)
    return header + phdr + code


@pytest.fixture
def kernel(tmp_path: Path) -> Path:
    path = tmp_path / "vmlinux"
    path.write_bytes(make_elf(SPIN))
    return path


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_error_line(err: str, *words: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kvmpy: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], lines[0]


# ---------------------------------------------------------------------- usage errors (status 2)
@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["-m", "0"], ["0 MiB", "1..256"]),
        (["-m", "-1"], ["-1 MiB"]),
        (["-m", "257"], ["257 MiB"]),
        (["-m", "1G"], ["1024 MiB"]),
        (["-m", "lots"], ["invalid memory size"]),
        (["--mode", "pv"], ["'pv'", "vz, te"]),
        (["--console", "ttyS9"], ["'ttyS9'", "ttyS0 or hvc0"]),
        (["--serial", "bogus"], ["--serial", "bogus"]),
        (["--serial", "tcp:localhost:http"], ["port"]),
        (["--serial", "file:"], ["path"]),
        (["--machine", "pc"], ["invalid choice"]),
        (["--max-seconds", "0"], ["positive"]),
        (["--max-seconds", "soon"], ["seconds"]),
        (["--jit-threshold", "0"], ["--jit-threshold", "at least 1"]),
        (["--jit-threshold", "often"], ["invalid count"]),
        (["--frobnicate"], ["unrecognized"]),
    ],
)
def test_usage_errors(
    capsys: pytest.CaptureFixture[str], kernel: Path, extra: list[str], words: list[str]
) -> None:
    status, out, err = run_main(capsys, "run", "--kernel", str(kernel), *extra)
    assert status == 2
    assert out == ""
    assert_one_error_line(err, *words)


@pytest.mark.parametrize(
    "argv",
    [[], ["boot"], ["run"], ["run", "--kernel"], ["--kernel", "x"]],
    ids=["none", "cmd", "nokernel", "noval", "top"],
)
def test_command_line_shape_errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    status, _out, err = run_main(capsys, *argv)
    assert status == 2
    assert_one_error_line(err)


def test_help_is_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(capsys, "run", "--help")
    assert status == 0 and "--kernel" in out and err == ""


# ---------------------------------------------------------------------- file errors (status 1)
@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, ["no such file"]),
        (b"MZ\x90\x00 not a kernel", ["not an ELF"]),
        (make_elf(SPIN, elf_class=2), ["64-bit kernel", "5kc"]),
        (make_elf(SPIN, data=2), ["big-endian"]),
        (make_elf(SPIN, machine=62), ["not a MIPS kernel", "EM_X86_64", "malta (mips"]),
        (make_elf(SPIN, vaddr=0xC0000000), ["kseg2"]),
    ],
    ids=["missing", "not-elf", "64bit", "big-endian", "x86", "kseg2"],
)
def test_bad_kernels(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes | None, words: list[str]
) -> None:
    path = tmp_path / "vmlinux"
    if content is not None:
        path.write_bytes(content)
    status, _out, err = run_main(capsys, "run", "--kernel", str(path), "--serial", "none")
    assert status == 1
    assert_one_error_line(err, str(path), *words)


def test_kernel_is_a_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _out, err = run_main(capsys, "run", "--kernel", str(tmp_path))
    assert status == 1
    assert_one_error_line(err, "directory")


@pytest.mark.parametrize(
    ("drive", "words"),
    [
        ("nofile", ["--drive", "file=PATH"]),
        ("file=", ["--drive", "file=PATH is required"]),
        ("file=/x,readonly=maybe", ["readonly must be on or off"]),
        ("file=/x,cache=none", ["--drive", "expected"]),
    ],
)
def test_bad_drive_specs(
    capsys: pytest.CaptureFixture[str], kernel: Path, drive: str, words: list[str]
) -> None:
    status, _out, err = run_main(capsys, "run", "--kernel", str(kernel), "--serial", "none", "--drive", drive)
    assert status == 1
    assert_one_error_line(err, *words)


def test_missing_drive_image(capsys: pytest.CaptureFixture[str], kernel: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.img"
    status, _out, err = run_main(capsys, "run", "--kernel", str(kernel), "--serial", "none",
                                 "--drive", f"file={missing}")
    assert status == 1
    assert_one_error_line(err, str(missing))


def test_missing_initrd(capsys: pytest.CaptureFixture[str], kernel: Path, tmp_path: Path) -> None:
    status, _out, err = run_main(capsys, "run", "--kernel", str(kernel), "--initrd", str(tmp_path / "nope"))
    assert status == 1
    assert_one_error_line(err, "initrd", "no such file")


def test_serial_file_cannot_be_opened(
    capsys: pytest.CaptureFixture[str], kernel: Path, tmp_path: Path
) -> None:
    spec = f"file:{tmp_path}/no/such/dir/console.log"
    status, _out, err = run_main(capsys, "run", "--kernel", str(kernel), "--serial", spec)
    assert status == 1
    assert_one_error_line(err, "console.log")


def test_module_entry_point_prints_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kvmpy.vmm.cli", "run", "--kernel", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert_one_error_line(done.stderr, "no such file")


# ---------------------------------------------------------------------- with a stand-in machine
@dataclass
class FakeOutcome:
    exit_code: int
    text: str

    def __str__(self) -> str:
        return self.text


class FakeMachine:
    """Stands in for the Malta in the registry to test how the CLI drives a board.

    Its class keeps the Malta's declared facts (limits, modes, kernel check);
    building and running are recorded instead of done.
    """

    def __init__(self, *, fail: Exception | None = None, outcome: FakeOutcome | None = None) -> None:
        self.fail = fail
        self.outcome = outcome or FakeOutcome(0, "shutdown")
        self.configs: list[MachineConfig] = []
        self.runs: list[float | None] = []
        self.gdb: list[object] = []
        self.serials: list[object] = []
        fake = self

        class Board(Malta):
            def __init__(self, config: MachineConfig, serial: object) -> None:  # no super(): nothing is built
                fake.configs.append(config)
                fake.serials.append(serial)
                if fake.fail is not None:
                    raise fake.fail

            def run(self, max_seconds: float | None = None, gdb: object = None) -> FakeOutcome:  # type: ignore[override]
                fake.runs.append(max_seconds)
                fake.gdb.append(gdb)
                return fake.outcome

            def stats_report(self) -> str:
                return "exit mmio: 42\nexit halt: 1"

        self.board = Board


def install(monkeypatch: pytest.MonkeyPatch, fake: FakeMachine) -> None:
    monkeypatch.setattr(cli, "find_machine", lambda name: fake.board)


def test_arguments_reach_the_machine(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kernel: Path, tmp_path: Path
) -> None:
    fake = FakeMachine()
    install(monkeypatch, fake)
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"\x1f\x8b")
    status, out, err = run_main(
        capsys,
        "run",
        "--kernel", str(kernel),
        "--initrd", str(initrd),
        "--append", "console=ttyS0 quiet",
        "-m", "128M",
        "--serial", "none",
        "--max-seconds", "2.5",
        "--no-reboot",
    )  # fmt: skip
    assert (status, out, err) == (0, "", "")
    (config,) = fake.configs
    assert config == MachineConfig(
        kernel=kernel,
        initrd=initrd,
        append="console=ttyS0 quiet",
        mem_size_mib=128,
        mode="vz",
        console="ttyS0",
        no_reboot=True,
    )
    assert fake.runs == [2.5]
    assert fake.gdb == [None]


def test_gdb_flags_reach_the_machine(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kernel: Path
) -> None:
    fake = FakeMachine()
    install(monkeypatch, fake)
    assert run_main(capsys, "run", "--kernel", str(kernel), "--serial", "none", "-s", "-S")[0] == 0
    (gdb,) = fake.gdb
    assert (gdb.listen.host, gdb.listen.port, gdb.start_stopped) == ("127.0.0.1", 1234, True)
    status, _out, err = run_main(capsys, "run", "--kernel", str(kernel), "--serial", "none", "-S")
    assert status != 0 and "-S" in err and len(fake.gdb) == 1


def test_defaults(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kernel: Path) -> None:
    fake = FakeMachine()
    install(monkeypatch, fake)
    assert run_main(capsys, "run", "--kernel", str(kernel), "--serial", "none")[0] == 0
    (config,) = fake.configs
    assert (config.mem_size_mib, config.mode, config.no_reboot, config.append, config.initrd) == (
        256,
        "vz",
        False,
        "",
        None,
    )
    assert fake.runs == [None]


def test_machine_error_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kernel: Path
) -> None:
    install(monkeypatch, FakeMachine(fail=VmmError("kernel segment does not fit in 16 MiB of RAM")))
    status, _out, err = run_main(capsys, "run", "--kernel", str(kernel), "--serial", "none")
    assert status == 1
    assert_one_error_line(err, "does not fit")


def test_unexpected_exception_is_one_line_unless_asked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kernel: Path
) -> None:
    install(monkeypatch, FakeMachine(fail=KeyError("oops")))
    monkeypatch.delenv("KVMPY_TRACEBACK", raising=False)
    status, _out, err = run_main(capsys, "run", "--kernel", str(kernel), "--serial", "none")
    assert status == 1
    assert_one_error_line(err, "internal error", "KeyError")
    monkeypatch.setenv("KVMPY_TRACEBACK", "1")
    with pytest.raises(KeyError):
        cli.main(["run", "--kernel", str(kernel), "--serial", "none"])


def test_timeout_status_and_stats(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kernel: Path
) -> None:
    install(monkeypatch, FakeMachine(outcome=FakeOutcome(124, "timeout: stopped after 1 s")))
    status, out, err = run_main(capsys, "run", "--kernel", str(kernel), "--serial", "none", "--stats")
    assert status == 124
    assert out == ""
    assert err.splitlines() == ["exit mmio: 42", "exit halt: 1", "kvmpy: timeout: stopped after 1 s"]


def test_serial_is_closed_even_when_the_machine_fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kernel: Path, tmp_path: Path
) -> None:
    fake = FakeMachine(fail=VmmError("nope"))
    install(monkeypatch, fake)
    log = tmp_path / "console.log"
    assert run_main(capsys, "run", "--kernel", str(kernel), "--serial", f"file:{log}")[0] == 1
    (serial,) = fake.serials
    serial.write(b"after close")  # type: ignore[attr-defined]
    assert log.read_bytes() == b""


# ---------------------------------------------------------------------- the real board
def test_real_malta_prints_on_the_console_and_resets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    kernel = tmp_path / "ok.elf"
    kernel.write_bytes(make_elf(GUEST_OK_AND_RESET))
    log = tmp_path / "console.log"
    status, out, err = run_main(
        capsys,
        "run",
        "--kernel", str(kernel),
        "--serial", f"file:{log}",
        "--no-reboot",
        "--max-seconds", "60",
        "--stats",
    )  # fmt: skip
    assert status == 0, err
    assert log.read_bytes() == b"OK\n"
    assert "Traceback" not in err and out == ""


def test_ctrl_a_x_on_a_terminal_quits_cleanly_and_restores_it(tmp_path: Path) -> None:
    kernel = tmp_path / "spin.elf"
    kernel.write_bytes(make_elf(SPIN))
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        child = subprocess.Popen(
            [sys.executable, "-m", "kvmpy.vmm.cli", "run", "--kernel", str(kernel), "--max-seconds", "60"],
            stdin=slave,
            stdout=slave,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        deadline = time.monotonic() + 30
        while termios.tcgetattr(slave)[3] & termios.ICANON and time.monotonic() < deadline:
            time.sleep(0.05)  # wait for raw mode: the console is up
        assert not termios.tcgetattr(slave)[3] & termios.ICANON
        os.write(master, b"\x01x")
        assert child.wait(timeout=30) == 0
        assert child.stderr is not None and child.stderr.read() == b""
        child.stderr.close()
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_te_mode_and_dyntrans_switch_reach_the_machine(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kernel: Path
) -> None:
    fake = FakeMachine()
    install(monkeypatch, fake)
    status, out, err = run_main(capsys, "run", "--kernel", str(kernel), "--serial", "none",
                                "--mode", "te", "--no-dyntrans")
    assert (status, err) == (0, "")
    (config,) = fake.configs
    assert config.mode == "te" and config.te_dyntrans is False


def test_jit_switches_reach_the_machine(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kernel: Path
) -> None:
    fake = FakeMachine()
    install(monkeypatch, fake)
    for argv, enabled, threshold in (([], True, JitSettings().threshold),
                                     (["--jit-threshold", "7"], True, 7),
                                     (["--no-jit"], False, JitSettings().threshold)):
        status, _out, err = run_main(capsys, "run", "--kernel", str(kernel), "--serial", "none", *argv)
        assert (status, err) == (0, "")
        config = fake.configs[-1]
        assert (config.jit.enabled, config.jit.threshold) == (enabled, threshold)


# ---------------------------------------------------------------------- the machine registry
def test_registry_finds_the_malta_and_refuses_unknown_boards() -> None:
    from kvmpy.vmm.machines import find_machine, machine_names
    from kvmpy.vmm.machines.base import MachineConfigError

    assert "malta" in machine_names()
    board = find_machine("malta")
    assert board is Malta and board.arch == "mips"
    assert (board.memory.min_mib, board.memory.max_mib, board.memory.default_mib) == (1, 256, 256)
    with pytest.raises(MachineConfigError, match="'pc'"):
        find_machine("pc")


def test_limits_in_messages_come_from_the_board(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kernel: Path
) -> None:
    fake = FakeMachine()

    class Bigger(fake.board):  # type: ignore[name-defined,misc]
        memory = MemoryLimits(min_mib=16, max_mib=1024, default_mib=512)

    monkeypatch.setattr(cli, "find_machine", lambda name: Bigger)
    status, _out, err = run_main(capsys, "run", "--kernel", str(kernel), "-m", "8", "--serial", "none")
    assert status == 2
    assert_one_error_line(err, "8 MiB", "16..1024")
    assert run_main(capsys, "run", "--kernel", str(kernel), "-m", "1G", "--serial", "none")[0] == 0
    assert run_main(capsys, "run", "--kernel", str(kernel), "--serial", "none")[0] == 0
    assert [c.mem_size_mib for c in fake.configs] == [1024, 512]
