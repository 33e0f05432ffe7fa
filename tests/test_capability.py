"""runtime/capability.py: what the hardware runs fast, from a /proc/cpuinfo text; everything that
picks a dtype or times a matmul asks it. No test here times a matmul in an emulated dtype."""

from __future__ import annotations

import platform

import pytest
import torch

from blurbkit.errors import BlurbkitError
from blurbkit.runtime import capability as cap_module
from blurbkit.runtime.capability import ENV_CPU_DTYPES, capability, detect, parse_cpuinfo
from blurbkit.runtime.precision import autocast_dtype, cpu_has_bf16
from blurbkit.speed import machine

CPU = torch.device("cpu")


def _x86(flags: str, model: str = "AMD EPYC 7B13", cores: int = 2) -> str:
    blocks = [
        f"processor\t: {n}\nvendor_id\t: AuthenticAMD\nmodel name\t: {model}\nphysical id\t: 0\n"
        f"core id\t\t: {n}\ncpu cores\t: {cores}\nflags\t\t: fpu sse sse2 {flags}\n"
        for n in range(cores)
    ]
    return "\n".join(blocks)


AVX2_ONLY = _x86("avx fma avx2")  # the 2-core EPYC of the issue: no avx512 at all
SAPPHIRE_RAPIDS = _x86("avx2 fma avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8",
                       model="Intel(R) Xeon(R) Platinum 8480+", cores=4)
GRAVITON3 = "processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd asimdhp sve i8mm bf16 svebf16\n" \
            "CPU implementer\t: 0x41\n\nprocessor\t: 1\nFeatures\t: fp asimd asimdhp sve i8mm bf16 svebf16\n"
GRAVITON2 = "processor\t: 0\nFeatures\t: fp asimd asimdhp\n"


@pytest.fixture
def fp32_only(monkeypatch):
    """This machine as a CPU without bf16 (the override the issue's AVX2 EPYC gets for free)."""
    monkeypatch.setenv(ENV_CPU_DTYPES, "fp32")
    assert capability().native_dtypes == ("fp32",)


def test_flags_of_a_cpu_without_avx512():
    cap = detect(cpuinfo=AVX2_ONLY, env={}, cuda=False)
    assert cap.device == "cpu" and cap.cpu.model == "AMD EPYC 7B13"
    assert cap.relevant_flags == ["avx2", "fma"]
    assert cap.native_dtypes == ("fp32",) and not cap.bf16
    assert "avx512_bf16" in cap.not_native["bf16"]
    assert cap.cpu.physical_cores == 2 and cap.cpu.logical == 2 and parse_cpuinfo(AVX2_ONLY) == cap.cpu


def test_flags_of_a_cpu_with_amx():
    cap = detect(cpuinfo=SAPPHIRE_RAPIDS, env={}, cuda=False)
    assert cap.native_dtypes == ("fp32", "bf16") and cap.native(torch.bfloat16) and cap.native("float32")
    assert {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"} <= set(cap.relevant_flags)
    assert cap.cpu.physical_cores == 4
    assert not cap.native(torch.float16)  # fp16 autocast is for GPUs


def test_arm_features_line():
    graviton3 = detect(cpuinfo=GRAVITON3, env={}, cuda=False)
    assert graviton3.bf16 and {"sve", "bf16", "svebf16"} <= set(graviton3.relevant_flags)
    assert graviton3.cpu.logical == 2
    assert detect(cpuinfo=GRAVITON2, env={}, cuda=False).native_dtypes == ("fp32",)


def test_override_forces_fp32_only():
    cap = detect(cpuinfo=SAPPHIRE_RAPIDS, env={ENV_CPU_DTYPES: "fp32"}, cuda=False)
    assert cap.native_dtypes == ("fp32",) and cap.cpu_dtypes == ("fp32",)
    assert cap.not_native["bf16"] == f"disabled by {ENV_CPU_DTYPES}=fp32"
    assert cap.report()["override"] == f"{ENV_CPU_DTYPES}=fp32"
    # it only takes dtypes away: bf16 cannot be switched on where it would be emulated
    assert detect(cpuinfo=AVX2_ONLY, env={ENV_CPU_DTYPES: "fp32,bf16"}, cuda=False).native_dtypes == ("fp32",)
    with pytest.raises(BlurbkitError, match="unknown dtype"):
        detect(cpuinfo=AVX2_ONLY, env={ENV_CPU_DTYPES: "int4"}, cuda=False)


def test_a_onednn_isa_cap_below_bf16_makes_bf16_not_native():
    """ONEDNN_MAX_CPU_ISA=AVX2 on a bf16 CPU: oneDNN emulates bf16 matmuls there."""
    capped = detect(cpuinfo=SAPPHIRE_RAPIDS, env={"ONEDNN_MAX_CPU_ISA": "AVX2"}, cuda=False)
    assert capped.native_dtypes == ("fp32",) and "ONEDNN_MAX_CPU_ISA=AVX2" in capped.not_native["bf16"]
    assert capped.report()["isa_limit"] == "ONEDNN_MAX_CPU_ISA=AVX2"
    for value in ("avx512_core", "AVX512_CORE_VNNI", "AVX2_VNNI"):  # also under the old variable name
        assert not detect(cpuinfo=SAPPHIRE_RAPIDS, env={"DNNL_MAX_CPU_ISA": value}, cuda=False).bf16, value
    for value in ("AVX512_CORE_BF16", "avx512_core_amx", "ALL"):  # caps at or above bf16 change nothing
        assert detect(cpuinfo=SAPPHIRE_RAPIDS, env={"ONEDNN_MAX_CPU_ISA": value}, cuda=False).bf16, value
    # ARM: oneDNN's x86 ISA names do not apply
    assert detect(cpuinfo=GRAVITON3, env={"ONEDNN_MAX_CPU_ISA": "AVX2"}, cuda=False).bf16


X86_ONLY = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                              reason="oneDNN's and ATen's x86 instruction caps")


@X86_ONLY
def test_a_process_started_with_the_isa_cap_trains_in_fp32():
    """The variable as set for a whole process (what oneDNN itself reads), not a test's fake text."""
    import os
    import subprocess
    import sys

    code = ("from blurbkit.runtime.capability import capability; from blurbkit.runtime.precision import autocast_dtype; "
            "import torch; print(capability().native_dtypes, autocast_dtype('auto', torch.device('cpu')))")
    env = {k: v for k, v in os.environ.items() if k != ENV_CPU_DTYPES} | {"ONEDNN_MAX_CPU_ISA": "AVX2"}  # oneDNN's cap alone
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["('fp32',)", "None"]


AVX2_KERNELS = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


@X86_ONLY
def test_a_finetune_on_avx2_kernels_runs_in_fp32(shared_data, tmp_path):
    """A whole fine-tuning run (training, dev and test inference) in a process whose kernels are those
    of an AVX2-only CPU, where a bf16 matmul would be emulated: it must run and record fp32."""
    import json
    import os
    import subprocess
    import sys

    from blurbkit.models.tiny import build_tiny_bert

    model = build_tiny_bert(tmp_path / "bert")
    env = {k: v for k, v in os.environ.items() if k != ENV_CPU_DTYPES} | AVX2_KERNELS | {"OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "blurbkit", "finetune", "--dataset", "gad", "--model", str(model),
                          "--data", str(shared_data), "--out", str(tmp_path / "run"), "--epochs", "1",
                          "--max-train-examples", "16", "--max-eval-examples", "8", "--max-test-examples", "8",
                          "--no-progress"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["precision"] == "fp32"


def test_capability_is_cached_and_follows_the_override(monkeypatch):
    monkeypatch.delenv(ENV_CPU_DTYPES, raising=False)
    assert capability() is capability()
    monkeypatch.setenv(ENV_CPU_DTYPES, "fp32")
    assert capability().native_dtypes == ("fp32",) and not cpu_has_bf16()


def test_autocast_is_fp32_on_an_fp32_only_cpu(fp32_only, capsys):
    assert autocast_dtype("auto", CPU) is None
    assert autocast_dtype("bf16", CPU) is None
    assert capability().not_native["bf16"] in capsys.readouterr().err  # the override, or the CPU itself


def test_autocast_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(cap_module, "_cached", lambda *_: detect(cpuinfo=AVX2_ONLY, env={}, cuda=False))
    assert autocast_dtype("auto", CPU) is None
    monkeypatch.setattr(cap_module, "_cached", lambda *_: detect(cpuinfo=SAPPHIRE_RAPIDS, env={}, cuda=False))
    assert autocast_dtype("auto", CPU) is torch.bfloat16


def test_peaks_are_measured_only_for_native_dtypes(fp32_only, monkeypatch):
    timed = []

    def fake_peak(dtype, size=2048, seconds=1.0, allow_emulated=False):
        assert capability().native(dtype), f"timed a non-native {dtype}"
        timed.append(dtype)
        return 1.0

    monkeypatch.setattr(machine, "matmul_peak", fake_peak)
    peaks, skipped = machine.measure_peaks(0.01, size=64)
    assert timed == [torch.float32] and peaks == {"fp32": 1.0}
    assert skipped["bf16"] == capability().not_native["bf16"]
    assert machine.peak_of(peaks, "bfloat16") == ("bf16", None) and machine.peak_of(peaks, None) == ("fp32", 1.0)


def test_matmul_peak_refuses_an_emulated_dtype(fp32_only):
    with pytest.raises(BlurbkitError, match="not timing a bf16 matmul"):
        machine.matmul_peak(torch.bfloat16, size=64, seconds=0.0)
    assert machine.matmul_peak(torch.float32, size=256, seconds=0.02) > 0


def test_machine_info_says_what_runs_natively(fp32_only):
    info = machine.machine_info()
    assert info["native_dtypes"] == ["fp32"] and info["dtype_override"] == f"{ENV_CPU_DTYPES}=fp32"


SMT_HOST = "\n".join(  # 2 sockets x 2 cores x 2 threads: CPUs n and n+4 share a core
    f"processor\t: {n}\nmodel name\t: Intel(R) Xeon(R)\nphysical id\t: {n // 2 % 2}\ncore id\t\t: {n % 2}\nflags\t\t: avx2\n"
    for n in range(8))


def test_usable_cores_are_the_cores_of_the_allowed_cpus_within_the_quota(monkeypatch):
    """/proc/cpuinfo lists the whole host: taskset, a container's cpuset or a CPU quota give fewer."""
    from blurbkit.runtime.capability import usable_cores

    monkeypatch.setattr(cap_module, "cgroup_cpu_limit", lambda *_: None)  # not the CI machine's own quota

    host = parse_cpuinfo(SMT_HOST)
    assert host.physical_cores == 4 and host.logical == 8
    assert usable_cores(host, allowed=set(range(8))) == 4
    assert usable_cores(host, allowed={0}) == 1  # taskset -c 0
    assert usable_cores(host, allowed={0, 4}) == 1  # both threads of one core
    assert usable_cores(host, allowed={0, 1, 2}) == 3
    assert usable_cores(host, allowed=set(range(8)), quota=2.5) == 2  # docker --cpus 2.5
    assert usable_cores(host, allowed=set(range(8)), quota=0.5) == 1
    arm = parse_cpuinfo(GRAVITON3)  # no core ids: the allowed CPUs count
    assert usable_cores(arm, allowed={1}) == 1 and usable_cores(arm, allowed={0, 1}) == 2


def test_cgroup_quota_v1_and_v2(tmp_path):
    from blurbkit.runtime.cgroups import cgroup_cpu_limit

    v2 = tmp_path / "v2"
    (v2 / "ci" / "job").mkdir(parents=True)
    (v2 / "ci" / "cpu.max").write_text("300000 100000\n")
    (v2 / "ci" / "job" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(v2, "0::/ci/job\n") == 3.0  # the parent's quota binds the job
    assert cgroup_cpu_limit(v2, "0::/\n") is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    # in a container the host's path is shown, the container's own cgroup is mounted at the root
    assert cgroup_cpu_limit(v1, "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n") == 2.0
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(v1, "2:cpu,cpuacct:/\n") is None
    (v1 / "cpu").rename(v1 / "cpu,cpuacct")  # no "cpu" link: the controller's own folder
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("150000\n")
    assert cgroup_cpu_limit(v1, "2:cpu,cpuacct:/docker/abc\n") == 1.5


def test_pools_are_sized_to_the_cpus_this_process_may_use(monkeypatch):
    from blurbkit.experiments import executors

    monkeypatch.setattr(cap_module, "_cached", lambda *_: detect(cpuinfo=SMT_HOST, env={}, cuda=False))
    monkeypatch.setattr(cap_module, "cgroup_cpu_limit", lambda *_: None)
    monkeypatch.setattr(cap_module.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert executors.machine_cores() == 4 and executors.pool_size(2, None) == 2
    monkeypatch.setattr(cap_module.os, "sched_getaffinity", lambda pid: {0})
    assert executors.machine_cores() == 1 and executors.pool_size(1, None) == 1
    monkeypatch.setattr(cap_module.os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(cap_module, "cgroup_cpu_limit", lambda *_: 2.0)
    assert executors.machine_cores() == 2


def test_torch_threads_are_lowered_to_a_cgroup_quota_unless_omp_num_threads_is_set(monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.setattr(cap_module, "cgroup_cpu_limit", lambda *_: 1.5)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        torch.set_num_threads(2)  # what torch starts with: every CPU of the affinity mask
        assert cap_module.cap_torch_threads() == 1 and torch.get_num_threads() == 1
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # chosen by the user: kept
        assert cap_module.cap_torch_threads() is None and torch.get_num_threads() == 2
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(cap_module, "cgroup_cpu_limit", lambda *_: None)  # no quota: torch's own choice
        assert cap_module.cap_torch_threads() is None and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
