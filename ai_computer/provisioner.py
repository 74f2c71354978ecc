"""Where configuration that predates ``ai_computer.kernel`` finds the provisioner."""

from .kernel.provisioner import DockerSandboxProvisioner

__all__ = ["DockerSandboxProvisioner"]
