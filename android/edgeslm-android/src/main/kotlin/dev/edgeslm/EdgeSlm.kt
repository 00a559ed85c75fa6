package dev.edgeslm

import android.content.Context
import android.os.Handler
import android.os.Looper
import java.io.File
import java.io.IOException

/**
 * Android entry points (the only file of the library that uses android.*; EdgeSlmModel is plain JVM).
 *
 * load(context, "edgeslm/<name>")  an asset folder written by `edgeslm package --android`: copied once
 *                                  to filesDir/edgeslm/<name> (the runtime mmaps model.pte, which needs a
 *                                  real file), re-copied when the packaged manifest.json changes.
 * load(context, "/abs/path")       a bundle folder already on the filesystem (e.g. downloaded).
 */
object EdgeSlm {
    const val ASSET_ROOT = "edgeslm"

    /** Blocks for the asset copy (first run) and the load: call from a background thread, or use loadAsync. */
    @JvmStatic
    @JvmOverloads
    fun load(context: Context, bundlePathOrAsset: String, threads: Int = 0): EdgeSlmModel {
        if (bundlePathOrAsset.startsWith("/")) return EdgeSlmModel.open(bundlePathOrAsset, threads)
        val dir = copyAssetBundle(context, bundlePathOrAsset)
        return EdgeSlmModel.open(dir.path, threads)
    }

    /** load() on a new thread; exactly one of the callbacks runs, on the main thread. */
    @JvmStatic
    fun loadAsync(context: Context, bundlePathOrAsset: String, onLoaded: (EdgeSlmModel) -> Unit,
                  onError: (EdgeSlmException) -> Unit) {
        val app = context.applicationContext
        val main = Handler(Looper.getMainLooper())
        Thread({
            try {
                val model = load(app, bundlePathOrAsset)
                main.post { onLoaded(model) }
            } catch (e: EdgeSlmException) {
                main.post { onError(e) }
            } catch (e: Exception) {
                main.post { onError(EdgeSlmException("cannot load $bundlePathOrAsset: $e")) }
            }
        }, "edgeslm-load").start()
    }

    /** Wraps a callback so its methods run on the main (UI) thread. */
    @JvmStatic
    fun onMainThread(callback: GenerationCallback): GenerationCallback {
        val main = Handler(Looper.getMainLooper())
        return object : GenerationCallback {
            override fun onToken(text: String) { main.post { callback.onToken(text) } }
            override fun onTokenId(id: Long) { main.post { callback.onTokenId(id) } }
            override fun onStats(stats: Stats) { main.post { callback.onStats(stats) } }
            override fun onError(error: EdgeSlmException) { main.post { callback.onError(error) } }
        }
    }

    /**
     * assets/<asset>/ -> filesDir/<asset>/, done once: skipped when the copied manifest.json equals the
     * packaged one. Written into a temporary sibling and renamed, so a killed app never leaves half a bundle.
     */
    @JvmStatic
    fun copyAssetBundle(context: Context, asset: String): File {
        val assets = context.assets
        val name = asset.trimEnd('/')
        val files = assets.list(name)
        if (files == null || files.isEmpty() || "manifest.json" !in files) {
            throw EdgeSlmException("asset '$name' is not an edgeslm bundle (no manifest.json): " +
                "package one with `edgeslm package BUNDLE --android DIR`", 2)
        }
        val dest = File(context.filesDir, name)
        val packaged = assets.open("$name/manifest.json").use { it.readBytes() }
        val existing = File(dest, "manifest.json")
        if (existing.isFile && existing.readBytes().contentEquals(packaged)) return dest
        val stage = File(dest.parentFile, ".${dest.name}.staging")
        stage.deleteRecursively()
        try {
            copyAssetDir(context, name, stage)
            dest.deleteRecursively()
            if (!stage.renameTo(dest)) throw IOException("rename $stage -> $dest failed")
        } catch (e: IOException) {
            stage.deleteRecursively()
            throw EdgeSlmException("cannot copy asset bundle '$name' to ${dest.path}: ${e.message}", 7)
        }
        return dest
    }

    private fun copyAssetDir(context: Context, asset: String, out: File) {
        out.mkdirs()
        for (child in context.assets.list(asset) ?: emptyArray()) {
            val path = "$asset/$child"
            val sub = context.assets.list(path)
            if (sub != null && sub.isNotEmpty()) {
                copyAssetDir(context, path, File(out, child))     // a folder (e.g. model.mlpackage-like)
            } else {
                context.assets.open(path).use { input ->
                    File(out, child).outputStream().use { input.copyTo(it, 1 shl 20) }
                }
            }
        }
    }
}
