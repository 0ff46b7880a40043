"""Step definitions, one module per area of ownCloud's contexts; importing this package
registers them all."""

from acceptance.steps import (  # noqa: F401
    auth,
    basics,
    favorites,
    properties,
    provisioning,
    sharing,
    trashbin,
    webdav,
)
