// Package pluginpush uploads a Docker managed plugin directory (config.json
// plus rootfs/, as `make plugin` writes it) to a registry without a Docker
// engine, in the form `docker plugin install` reads.
//
// # What a plugin looks like in a registry
//
// A plugin is a Docker schema2 manifest
// (application/vnd.docker.distribution.manifest.v2+json) with:
//
//   - a config blob of media type application/vnd.docker.plugin.v1+json: the
//     plugin's config.json with a "rootfs" member added,
//     {"type":"layers","diff_ids":["sha256:…"]};
//   - exactly one layer, application/vnd.docker.image.rootfs.diff.tar.gzip:
//     the gzipped tar of rootfs/, entries relative to the rootfs.
//
// The engine takes no manifest list for plugins: one tag per architecture.
//
// # Choices that differ from `docker plugin push`
//
// The engine (20.10 by experiment, current moby by its source) writes the
// digest of the *gzipped* blob into diff_ids when `docker plugin create`
// builds the layer, and pushes that config unchanged; install does not check
// diff_ids at all. This package writes the digest of the *uncompressed* tar there,
// which is what diff_id means in the image format, so that generic registry
// tools that verify layers against the config agree. Engine 20.10 installs
// and enables such a push (test/e2e/packaging_test.go) and upgrades a plugin from one.
//
// The engine re-serialises config.json from its own Go type (capitalised keys,
// a DockerVersion field). This package keeps the file's members as written;
// the engine decodes keys without regard to case.
//
// The tar is reproducible: entries sorted, owner root, modification times set
// to the Unix epoch, gzip header without name or time. The same rootfs always
// gives the same digests, so pushing an unchanged build again uploads
// nothing. Two plugins with the same layer can be installed side by side:
// the engine's "content … already exists" refusal concerns
// `docker plugin create` only.
package pluginpush
