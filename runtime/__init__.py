"""Native runtime sources (C API, backends, runner), shipped as package data for edgeslm.native.build_runner."""
