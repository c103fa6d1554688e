"""Identity: humans, sessions, agent classes, attestation and JWT-SVIDs."""
