// The edgeslm Android library: Kotlin API (src/main/kotlin/dev/edgeslm), JNI bridge (src/main/cpp), the
// native runtime for arm64-v8a (src/main/jniLibs/arm64-v8a, placed by `edgeslm package --android`) and
// bundles as assets (src/main/assets/edgeslm/<name>/).
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    alias(libs.plugins.android.library)
    alias(libs.plugins.kotlin.android)
}

val buildRuntime = providers.gradleProperty("edgeslm.buildRuntime").orNull == "true"
val executorchRoot = providers.gradleProperty("edgeslm.executorchRoot").orNull

android {
    namespace = "dev.edgeslm"
    compileSdk = libs.versions.compileSdk.get().toInt()
    ndkVersion = libs.versions.ndk.get()

    defaultConfig {
        minSdk = libs.versions.minSdk.get().toInt()
        consumerProguardFiles("consumer-rules.pro")
        ndk {
            abiFilters += "arm64-v8a"          // the runtime libraries exist for arm64-v8a only
        }
        externalNativeBuild {
            cmake {
                arguments += listOf("-DANDROID_STL=c++_shared", "-DEDGESLM_BUILD_RUNTIME=${if (buildRuntime) "ON" else "OFF"}")
                if (executorchRoot != null) arguments += "-DEXECUTORCH_ROOT=$executorchRoot"
            }
        }
    }

    externalNativeBuild {
        cmake {
            path = file("src/main/cpp/CMakeLists.txt")
            version = libs.versions.cmake.get()
        }
    }

    packaging {
        jniLibs {
            // Stored uncompressed and page-aligned in the APK, loaded in place (no extraction).
            useLegacyPackaging = false
            // libedgeslm.so sits in jniLibs and is linked by path from CMake: keep one copy.
            pickFirsts += "**/libedgeslm.so"
        }
    }

    androidResources {
        // Bundles are copied once from assets to filesDir (the runtime mmaps model.pte): skip compression.
        noCompress += listOf("pte", "so", "bin")
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}
