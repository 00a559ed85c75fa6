// edgeslm Android: the library (edgeslm-android: Kotlin API + JNI over runtime/include/edgeslm.h) and a
// sample app (sample/) that depends on it. See README.md for the commands; `edgeslm package BUNDLE
// --android DIR` writes a copy of this project with your bundle in the library's assets.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "edgeslm"
include(":edgeslm-android")
include(":sample")
