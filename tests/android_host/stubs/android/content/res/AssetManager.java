// STAND-IN for android.content.res.AssetManager: list/open with the real signatures, backed by a folder
// (the APK's assets/ on a phone). list() of a file returns an empty array, as Android's does.
package android.content.res;

import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;

public final class AssetManager {
    private final File root;

    public AssetManager(File root) { this.root = root; }

    public String[] list(String path) throws IOException {
        String[] names = new File(root, path).list();
        if (names == null) return new String[0];
        Arrays.sort(names);
        return names;
    }

    public InputStream open(String fileName) throws IOException {
        return new FileInputStream(new File(root, fileName));
    }
}
