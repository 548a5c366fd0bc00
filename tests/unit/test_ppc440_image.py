"""The ppc440 guest builder's pieces that need no build: apt sources, configs, cache keys."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kvmpy.vmm.images import ppc440
from kvmpy.vmm.images.common import ImageError

DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main

Types: deb
Enabled: no
URIs: http://example.org/debian
Suites: bookworm
Components: main
"""

ONE_LINE = """# a comment
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
http://ftp.de.debian.org/debian bookworm main non-free-firmware
deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main
deb-src http://ftp.de.debian.org/debian bookworm main
"""


def test_deb_src_mirrors_this_releases_debian_entries_only():
    text = ppc440.deb_src_stanzas(ppc440.parse_deb822_sources(DEB822), "bookworm")
    stanzas = ppc440.parse_deb822_sources(text)
    assert [(s.types, s.uris, s.suites, s.components, s.signed_by) for s in stanzas] == [
        (("deb-src",), ("http://deb.debian.org/debian",), ("bookworm", "bookworm-updates"), ("main",),
         "/usr/share/keyrings/debian-archive-keyring.gpg"),
        (("deb-src",), ("http://deb.debian.org/debian-security",), ("bookworm-security",),
         ("main", "contrib"), "/usr/share/keyrings/debian-archive-keyring.gpg"),
    ]
    # the same input gives the same file: writing it is idempotent
    assert text == ppc440.deb_src_stanzas(ppc440.parse_deb822_sources(DEB822), "bookworm")


def test_one_line_sources_keep_signed_by_and_skip_other_suites():
    sources = ppc440.parse_one_line_sources(ONE_LINE)
    text = ppc440.deb_src_stanzas(sources, "bookworm")
    (stanza,) = ppc440.parse_deb822_sources(text)
    assert stanza.uris == ("http://ftp.de.debian.org/debian",)
    assert stanza.components == ("main", "non-free-firmware")
    assert stanza.signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"


def test_no_debian_source_is_a_clear_error():
    with pytest.raises(ImageError, match="no apt source for Debian trixie"):
        ppc440.deb_src_stanzas(ppc440.parse_deb822_sources(DEB822), "trixie")


def test_the_kernel_fragment_is_checked_against_the_final_config():
    wanted = ppc440.fragment_lines(ppc440.KERNEL_FRAGMENT.read_text())
    assert wanted["CONFIG_VIRTIO_MMIO"] == "y" and wanted["CONFIG_MODULES"] is None
    assert wanted["CONFIG_DEVTMPFS_MOUNT"] == "y"
    good = "\n".join(f"{k}={v}" if v is not None else f"# {k} is not set" for k, v in wanted.items())
    assert ppc440.config_mismatches(wanted, good) == []
    dropped = good.replace("CONFIG_VIRTIO_MMIO=y", "# CONFIG_VIRTIO_MMIO is not set")
    dropped = dropped.replace("# CONFIG_MODULES is not set", "CONFIG_MODULES=y")
    assert ppc440.config_mismatches(wanted, dropped) == [
        "CONFIG_MODULES=n (got y)", "CONFIG_VIRTIO_MMIO=y (got n)"
    ]


def test_busybox_config_changes_apply_or_fail():
    config = "CONFIG_A=y\n# CONFIG_STATIC is not set\nCONFIG_TC=y\nCONFIG_UDHCPC_DEFAULT_SCRIPT=\"/x\"\n"
    out = ppc440.set_config(config, ppc440.BUSYBOX_CONFIG)
    assert out.splitlines() == ["CONFIG_A=y", "CONFIG_STATIC=y", "CONFIG_TC=y",
                                'CONFIG_UDHCPC_DEFAULT_SCRIPT="/etc/udhcpc/default.script"']
    assert ppc440.set_config("CONFIG_TC=y\n", {"CONFIG_TC": None}) == "# CONFIG_TC is not set\n"
    with pytest.raises(ImageError, match="CONFIG_STATIC"):
        ppc440.set_config("CONFIG_A=y\n", {"CONFIG_STATIC": "y"})


def test_a_non_powerpc_or_dynamic_busybox_is_refused():
    with pytest.raises(ImageError, match="not a static 32-bit big-endian PowerPC"):
        ppc440.check_static_powerpc(Path(sys.executable).resolve())


def test_missing_packages_without_root_name_them(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ppc440, "installed_versions",
                        lambda ps: {p: None if p == "bison" else "1" for p in ps})
    monkeypatch.setattr(ppc440.os, "geteuid", lambda: 1000)
    with pytest.raises(ppc440.NeedsRootError, match="not installed: bison"):
        ppc440.ensure_packages()


def test_cache_keys_follow_their_inputs():
    assert ppc440.key_of("a", "b") == ppc440.key_of("a", "b")
    assert ppc440.key_of("a", "b") != ppc440.key_of("a", "c")
    assert ppc440.key_of("ab", "") != ppc440.key_of("a", "b")


def test_installed_versions_reads_dpkg_and_reports_missing_packages():
    versions = ppc440.installed_versions(("dpkg", "kvmpy-no-such-package"))
    assert versions["kvmpy-no-such-package"] is None
    assert versions["dpkg"] and versions["dpkg"][0].isdigit()


def test_without_debian_tools_the_error_says_so(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ImageError, match="dpkg-query not found"):
        ppc440.installed_versions(("dpkg",))
