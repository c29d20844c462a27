"""The agent contract: ``agent.proto`` and its generated modules (never edit those by hand).

Regenerate with ``python protos/generate.py`` after changing the proto.
"""

from protos import agent_pb2, agent_pb2_grpc

__all__ = ["agent_pb2", "agent_pb2_grpc", "SERVICE_NAME"]

# Fully qualified service name, as used by health checks and reflection.
SERVICE_NAME = agent_pb2.DESCRIPTOR.services_by_name["Agent"].full_name
