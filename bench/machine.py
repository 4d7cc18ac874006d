"""The facts about the machine that the benchmark figures depend on.

python -m bench.machine
"""

import os
import platform
import subprocess
import sys

import paramiko


def cpu_model():
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main():
    openssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr
    print(f"cores (nproc): {os.cpu_count()}")
    print(f"CPU: {cpu_model()}")
    print(f"kernel: {platform.release()}")
    print(f"Python: {sys.version.split()[0]}")
    print(f"OpenSSH: {openssh.strip()}")
    print(f"paramiko: {paramiko.__version__}")
    print(f"load average: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
