// STAND-IN for android.content.Context (no android.jar here): only the members EdgeSlm.kt uses, with the
// real signatures, so the Android-only file compiles and its asset copy runs on the host JVM.
package android.content;

import android.content.res.AssetManager;
import java.io.File;

public abstract class Context {
    public abstract AssetManager getAssets();
    public abstract File getFilesDir();
    public abstract Context getApplicationContext();
}
