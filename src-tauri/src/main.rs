fn main() {
    simpleotp_app::run();
}
