package dev.edgeslm.sample

import android.os.Bundle
import android.widget.Button
import android.widget.CheckBox
import android.widget.EditText
import android.widget.TextView
import androidx.appcompat.app.AppCompatActivity
import dev.edgeslm.EdgeSlm
import dev.edgeslm.EdgeSlmException
import dev.edgeslm.EdgeSlmModel
import dev.edgeslm.GenerationCallback
import dev.edgeslm.GenerationConfig
import dev.edgeslm.Stats

/**
 * One screen: prompt, Generate / Stop, streaming text, a stats line.
 * Steps: find the first bundle in assets/edgeslm/ -> EdgeSlm.loadAsync (copy to filesDir once, open off the
 * main thread) -> generate() streams pieces through EdgeSlm.onMainThread -> stats line -> close in onDestroy.
 */
class MainActivity : AppCompatActivity() {
    private var model: EdgeSlmModel? = null
    private lateinit var prompt: EditText
    private lateinit var generate: Button
    private lateinit var stop: Button
    private lateinit var chat: CheckBox
    private lateinit var output: TextView
    private lateinit var stats: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        prompt = findViewById(R.id.prompt)
        generate = findViewById(R.id.generate)
        stop = findViewById(R.id.stop)
        chat = findViewById(R.id.chat)
        output = findViewById(R.id.output)
        stats = findViewById(R.id.stats)

        val name = assets.list(EdgeSlm.ASSET_ROOT)?.firstOrNull { assets.list("${EdgeSlm.ASSET_ROOT}/$it")?.isNotEmpty() == true }
        if (name == null) {
            stats.text = getString(R.string.no_bundle)
            return
        }
        stats.text = getString(R.string.loading, name)
        EdgeSlm.loadAsync(this, "${EdgeSlm.ASSET_ROOT}/$name", { loaded ->
            model = loaded
            generate.isEnabled = true
            stats.text = "$name: loaded in %.0f ms, vocab %d, context %d".format(
                loaded.lastStats.modelLoadMs, loaded.vocabSize, loaded.maxSeqLen)
        }, { error -> stats.text = error.message })

        generate.setOnClickListener { startGeneration() }
        stop.setOnClickListener { model?.stop() }
    }

    private fun startGeneration() {
        val m = model ?: return
        output.text = ""
        generate.isEnabled = false
        stop.isEnabled = true
        val config = GenerationConfig(maxNewTokens = 256, chat = chat.isChecked)
        m.generate(prompt.text.toString(), config, EdgeSlm.onMainThread(object : GenerationCallback {
            override fun onToken(text: String) {
                output.append(text)
            }

            override fun onStats(stats: Stats) {
                this@MainActivity.stats.text = "TTFT %.0f ms · prefill %.1f tok/s · decode %.1f tok/s · %d tokens (%s)".format(
                    stats.ttftMs, stats.prefillTokensPerS, stats.decodeTokensPerS, stats.generatedTokens, stats.stopReason)
                done()
            }

            override fun onError(error: EdgeSlmException) {
                this@MainActivity.stats.text = error.message
                done()
            }
        }))
    }

    private fun done() {
        generate.isEnabled = true
        stop.isEnabled = false
    }

    override fun onDestroy() {
        model?.close()       // stops a running generation and waits for the worker
        model = null
        super.onDestroy()
    }
}
