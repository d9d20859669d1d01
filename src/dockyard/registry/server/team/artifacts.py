"""Kinds of artifacts attached to images (as referrers) that the team features look at."""

# A vulnerability scan report: the UI summarises it, and its push is the "scan_completed" webhook event.
SCAN_TYPES = ("application/sarif+json", "application/vnd.dockyard.scan.report+json",
              "application/vnd.cyclonedx.vex+json")
