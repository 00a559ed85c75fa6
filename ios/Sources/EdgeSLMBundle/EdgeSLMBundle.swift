import Foundation

/// The edgeslm bundle that `edgeslm package BUNDLE --ios DIR` copied into this package's resources.
public enum EdgeSLMBundle {
    /// Folder holding manifest.json, the model artifact and tokenizer.json.
    public static var url: URL {
        guard let url = Bundle.module.url(forResource: "model", withExtension: nil) else {
            fatalError("EdgeSLMBundle: Resources/model is missing; run `edgeslm package BUNDLE --ios DIR`")
        }
        return url
    }
}
