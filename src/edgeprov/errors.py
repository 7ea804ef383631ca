"""The one exception tree of edgeprov.

Every error knows its HTTP status, its numeric wire ``errorCode`` (whose first three digits
are the status, as the provisioning clients assume) and the hub's symbolic error name. The
wire adapters (``api``, ``mqtt``, ``cli``) map these once to their own shapes; domain code only
raises them.

    EdgeprovError
    ├── BadRequest                     400 400004 ArgumentInvalid
    │   ├── InvalidRegistrationId      400 400004
    │   ├── InvalidTwin                400 400004
    │   └── MessageTooLarge            413 413001
    ├── Unauthorized                   401 401002 IotHubUnauthorizedAccess
    ├── Forbidden                      403 403001
    │   └── QueueDepthExceeded         403 403002 DeviceMaximumQueueDepthExceeded
    ├── NotFound                       404 404000
    │   ├── EnrollmentNotFound         404 404201
    │   ├── RegistrationNotFound       404 404202
    │   ├── OperationNotFound          404 404204
    │   ├── LinkedHubNotFound          404 404205
    │   ├── DeviceNotFound             404 404001 DeviceNotFound
    │   ├── ModuleNotFound             404 404010 ModuleNotFound
    │   ├── ConfigurationNotFound      404 404011 ConfigurationNotFound
    │   └── DeviceNotOnline            404 404103 DeviceNotOnline
    ├── MethodNotAllowed               405 405000
    ├── Conflict                       409 409000
    │   ├── DeviceAlreadyExists        409 409001 DeviceAlreadyExists
    │   └── ModuleAlreadyExists        409 409301 ModuleAlreadyExistsOnDevice
    ├── PreconditionFailed             412 412002 PreconditionFailed
    ├── UnsupportedMediaType           415 415000
    ├── Throttled                      429 429001 ThrottlingException
    ├── InternalError                  500 500000 ServerError
    └── GatewayTimeout                 504 504101 GatewayTimeout
"""

from __future__ import annotations

from typing import ClassVar


class EdgeprovError(Exception):
    """Base of every error edgeprov reports to a caller."""

    status: ClassVar[int] = 500
    code: ClassVar[int] = 500000
    name: ClassVar[str] = "ServerError"

    def __init__(self, message: str, *, info: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.info = info or {}


class BadRequest(EdgeprovError):
    status, code, name = 400, 400004, "ArgumentInvalid"


class InvalidRegistrationId(BadRequest):
    pass


class InvalidTwin(BadRequest):
    pass


class MessageTooLarge(BadRequest):
    status, code, name = 413, 413001, "MessageTooLarge"


class Unauthorized(EdgeprovError):
    status, code, name = 401, 401002, "IotHubUnauthorizedAccess"


class Forbidden(EdgeprovError):
    status, code, name = 403, 403001, "Forbidden"


class QueueDepthExceeded(Forbidden):
    code, name = 403002, "DeviceMaximumQueueDepthExceeded"


class NotFound(EdgeprovError):
    status, code, name = 404, 404000, "NotFound"


class EnrollmentNotFound(NotFound):
    code = 404201


class RegistrationNotFound(NotFound):
    code = 404202


class OperationNotFound(NotFound):
    code = 404204


class LinkedHubNotFound(NotFound):
    code = 404205


class DeviceNotFound(NotFound):
    code, name = 404001, "DeviceNotFound"


class ModuleNotFound(NotFound):
    code, name = 404010, "ModuleNotFound"


class ConfigurationNotFound(NotFound):
    code, name = 404011, "ConfigurationNotFound"


class DeviceNotOnline(NotFound):
    code, name = 404103, "DeviceNotOnline"


class MethodNotAllowed(EdgeprovError):
    status, code, name = 405, 405000, "MethodNotAllowed"


class Conflict(EdgeprovError):
    status, code, name = 409, 409000, "Conflict"


class DeviceAlreadyExists(Conflict):
    code, name = 409001, "DeviceAlreadyExists"


class ModuleAlreadyExists(Conflict):
    code, name = 409301, "ModuleAlreadyExistsOnDevice"


class PreconditionFailed(EdgeprovError):
    status, code, name = 412, 412002, "PreconditionFailed"


class UnsupportedMediaType(EdgeprovError):
    status, code, name = 415, 415000, "UnsupportedMediaType"


class Throttled(EdgeprovError):
    status, code, name = 429, 429001, "ThrottlingException"


class InternalError(EdgeprovError):
    pass


class GatewayTimeout(EdgeprovError):
    status, code, name = 504, 504101, "GatewayTimeout"
