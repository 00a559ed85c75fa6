"""The Android Gradle project template (settings.gradle.kts, edgeslm-android/, sample/) shipped as package
data; `edgeslm package BUNDLE --android DIR` (edgeslm.package.android) copies it and adds the bundle as an
asset and the runtime libraries for arm64-v8a."""
