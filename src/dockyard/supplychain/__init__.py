"""Supply chain (layer L5): attestations made at build time, cosign signatures, and the pull policy.

    intoto.build_statements(client, options, result, specs) -> {image_id: [Statement]}  SBOM, provenance
    spec.parse_attest(...) -> [AttestSpec]         buildx's --sbom / --provenance / --attest flags
    cosign                                         cosign's key files, payload and signatures
    signing.sign_image / verify_image              signatures in a registry (.sig tag and referrer)
    listing.remote_attestations / local_attestations   what ``image attestations`` shows
    policy.enforce(registry, ref)                  [[policy]] rules of config.toml

How attestations are stored (in the image index, or as referrers) is ``imageops.attestations``.
"""
