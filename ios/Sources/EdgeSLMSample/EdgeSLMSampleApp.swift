import EdgeSLM
import EdgeSLMBundle
import SwiftUI

@main
struct EdgeSLMSampleApp: App {
    var body: some Scene { WindowGroup { ChatView() } }
}

@MainActor
final class ChatModel: ObservableObject {
    @Published var output = ""
    @Published var status = "loading…"
    @Published var running = false
    private var model: EdgeSLMModel?

    func load() {
        do {
            model = try EdgeSLMModel(bundle: EdgeSLMBundle.url)
            status = "ready (\(model!.manifest.backend), \(model!.manifest.quant.name))"
        } catch {
            status = "\(error)"
        }
    }

    func send(_ prompt: String) {
        guard let model, !running else { return }
        running = true
        output = ""
        Task {
            do {
                _ = try await model.generate(prompt: prompt, maxTokens: 128) { piece in
                    Task { @MainActor in self.output += piece }
                }
                let stats = await model.lastStats
                status = String(format: "TTFT %.0f ms · %.1f tok/s", stats.ttftMs, stats.decodeTokensPerS)
            } catch {
                status = "\(error)"
            }
            running = false
        }
    }

    func stop() { Task { await model?.stop() } }
}

struct ChatView: View {
    @StateObject private var chat = ChatModel()
    @State private var prompt = "What is the capital of France?"

    var body: some View {
        VStack(alignment: .leading, spacing: 12) {
            TextField("Prompt", text: $prompt).textFieldStyle(.roundedBorder)
            HStack {
                Button("Generate") { chat.send(prompt) }.disabled(chat.running)
                Button("Stop") { chat.stop() }.disabled(!chat.running)
            }
            ScrollView { Text(chat.output).frame(maxWidth: .infinity, alignment: .leading) }
            Text(chat.status).font(.footnote).foregroundStyle(.secondary)
        }
        .padding()
        .task { chat.load() }
    }
}
