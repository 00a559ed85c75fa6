// STAND-IN for android.os.Handler: post() runs the task at once (the host has no main looper).
package android.os;

public class Handler {
    public Handler(Looper looper) {}

    public final boolean post(Runnable r) {
        r.run();
        return true;
    }
}
