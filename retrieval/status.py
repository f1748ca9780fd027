"""The one table from library errors to gRPC status codes, with google.rpc details where they help.

Library code raises ``videomemory.errors`` classes; the server turns each into a
``google.rpc.Status`` here and nowhere else: ``MalformedId`` and other invalid fields get a
``BadRequest`` field violation naming the request field, ``NotFound`` a ``ResourceInfo`` naming
the resource. The message is always the library's, which says what to do.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from videomemory.errors import VideoMemoryError

CODES: dict[str, grpc.StatusCode] = {
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "FAILED_PRECONDITION": grpc.StatusCode.FAILED_PRECONDITION,
    "PERMISSION_DENIED": grpc.StatusCode.PERMISSION_DENIED,
    "UNAUTHENTICATED": grpc.StatusCode.UNAUTHENTICATED,
    "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "DEADLINE_EXCEEDED": grpc.StatusCode.DEADLINE_EXCEEDED,
    "CANCELLED": grpc.StatusCode.CANCELLED,
    "DATA_LOSS": grpc.StatusCode.DATA_LOSS,
    "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "INTERNAL": grpc.StatusCode.INTERNAL,
}


def to_status(error: VideoMemoryError, field: str = "", resource: tuple[str, str] | None = None) -> grpc.Status:
    """The gRPC status of a library error; ``field`` / ``resource`` add BadRequest / ResourceInfo details."""
    code = CODES.get(error.status, grpc.StatusCode.INTERNAL)
    details = []
    if code == grpc.StatusCode.INVALID_ARGUMENT and field:
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=str(error))
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    if code == grpc.StatusCode.NOT_FOUND and resource is not None:
        details.append(error_details_pb2.ResourceInfo(resource_type=resource[0], resource_name=resource[1], description=str(error)))
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    proto = status_pb2.Status(code=getattr(code_pb2, code.name), message=str(error), details=packed)
    return rpc_status.to_status(proto)


def details_of(error: grpc.RpcError) -> list[object]:
    """The google.rpc detail messages of a failed call (client side), unpacked."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    out: list[object] = []
    for a in status.details if status is not None else []:
        for cls in (error_details_pb2.BadRequest, error_details_pb2.ResourceInfo):
            if a.Is(cls.DESCRIPTOR):
                msg = cls()
                a.Unpack(msg)
                out.append(msg)
    return out
