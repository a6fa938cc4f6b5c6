"""ServingPusher and MobilePusher: atomic, versioned pushes of blessed models."""
